"""C2SP signed notes and tlog-checkpoint bodies for the audit log: byte-compatible with Go's sumdb/note (its
documented example key and note), checkable with nothing but SHA-256 and Ed25519, and strict on hostile input."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.results import signed_note as sn
from verifier.results.audit_checkpoint import Checkpoint, open_checkpoint, sign_checkpoint

# golang.org/x/mod/sumdb/note package documentation: its example keys and signed note.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n"
)
T = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
HEAD = hashlib.sha256(b"head").hexdigest()


def test_go_example_key_and_note_round_trip_byte_for_byte() -> None:
    signer = sn.parse_signer(GO_SKEY)
    assert signer.verifier.encode() == GO_VKEY and signer.encode() == GO_SKEY
    assert sn.sign(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic
    assert sn.open_note(GO_NOTE.encode(), sn.parse_verifier(GO_VKEY)) == GO_TEXT


def test_a_checkpoint_verifies_with_an_independent_ed25519_check() -> None:
    signer = sn.generate_signer("verifier.example/audit")
    note = sign_checkpoint(Checkpoint("verifier.example/audit", 42, HEAD, T), signer)
    body, blank, sig_line = note.partition("\n\n")
    b64_head = base64.b64encode(bytes.fromhex(HEAD)).decode()
    assert blank and body + "\n" == f"verifier.example/audit\n42\n{b64_head}\ntime 2026-01-02T03:04:05Z\n"
    # the verifier key line and the signature, decoded by hand as signed-note defines them
    name, key_hash, key_data = signer.verifier.encode().split("+", 2)
    raw = base64.b64decode(key_data)
    assert raw[0] == 0x01 and len(raw) == 33
    assert bytes.fromhex(key_hash) == hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert sig_line.startswith("\u2014 verifier.example/audit ") and sig_line.endswith("\n")
    blob = base64.b64decode(sig_line.split(" ")[2])
    assert blob[:4] == bytes.fromhex(key_hash) and len(blob) == 68
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], (body + "\n").encode())  # raises if wrong
    assert open_checkpoint(note.encode(), signer.verifier) == Checkpoint("verifier.example/audit", 42, HEAD, T)


def test_unknown_signers_are_ignored_and_a_bad_known_signature_rejects() -> None:
    mine, other = sn.generate_signer("audit"), sn.generate_signer("audit")
    text = Checkpoint("audit", 1, HEAD).body()
    theirs = sn.sign(text, other).split("\n\n")[1]
    both = sn.sign(text, mine).replace("\n\n", "\n\n" + theirs)
    assert open_checkpoint(both.encode(), mine.verifier).size == 1
    with pytest.raises(sn.NoteError) as exc:
        open_checkpoint(sn.sign(text, other).encode(), mine.verifier)
    assert exc.value.code == "NOTE_UNKNOWN_KEY"
    tampered = sn.sign(text, mine).replace("\n1\n", "\n2\n")
    with pytest.raises(sn.NoteError) as exc:
        open_checkpoint(tampered.encode(), mine.verifier)
    assert exc.value.code == "NOTE_SIGNATURE_INVALID"


def _signed(body: str, signer: sn.NoteSigner) -> bytes:
    return sn.sign(body, signer).encode()


@pytest.mark.parametrize(
    ("note", "code"),
    [
        (b"\xff\xfe", "NOTE_MALFORMED"),
        (b"x" * (sn.MAX_NOTE_BYTES + 1), "NOTE_MALFORMED"),
        (b"audit\n1\n", "NOTE_MALFORMED"),  # no signatures
        (b"audit\n1\n\n-- audit AAAA\n", "NOTE_MALFORMED"),  # not an em dash
        (b"audit\n1\n\n\xe2\x80\x94 audit ***\n", "NOTE_MALFORMED"),
        (b"audit\n1\n\n\xe2\x80\x94 audit AAAA\n", "NOTE_MALFORMED"),  # shorter than a key ID
        (b"audit\n1\n\n" + b"\xe2\x80\x94 x AAAAAAAA\n" * 101, "NOTE_MALFORMED"),
    ],
)
def test_malformed_notes_give_stable_codes(note: bytes, code: str) -> None:
    with pytest.raises(sn.NoteError) as exc:
        sn.open_note(note, sn.generate_signer("audit").verifier)
    assert exc.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        "audit\n01\nAAAA\n",
        "audit\n-1\nAAAA\n",
        "audit\n\u0661\nAAAA\n",
        "audit\n1\n",
        f"audit\n1\n{base64.b64encode(b'short').decode()}\n",
        "audit\n1\n!!!!\n",
        f"audit\n1\n{base64.b64encode(bytes(32)).decode()}\ntime yesterday\n",
        f"audit\n{2**63}\n{base64.b64encode(bytes(32)).decode()}\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    signer = sn.generate_signer("audit")
    with pytest.raises(sn.NoteError) as exc:
        open_checkpoint(_signed(body, signer), signer.verifier)
    assert exc.value.code == "CHECKPOINT_MALFORMED"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a+b",
        "two words",
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("+AR", "+Ah"),
        "PRIVATE+KEY+x+00000000+AAAA",
    ],
)
def test_bad_keys_are_usage_errors(text: str) -> None:
    with pytest.raises(sn.NoteKeyError):
        sn.parse_signer(text) if text.startswith("PRIVATE") else sn.parse_verifier(text)
