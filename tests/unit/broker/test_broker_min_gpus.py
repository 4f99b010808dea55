"""A broker rule may require GPU components (`min_gpus`, composite evidence): read from the configuration, bounded,
and handed to the result check (verifier.broker.release)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.broker.test_broker import write
from verifier.broker.config import load_config
from verifier.broker.release import min_gpus
from verifier.errors import ConfigError


def test_min_gpus_is_read_and_defaults_to_zero(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1", "min_gpus": 2}]))
    assert config.rules["db"].min_gpus == 2 and min_gpus(config.rules["db"]) == 2
    plain = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}]))
    assert plain.rules["db"].min_gpus == 0


@pytest.mark.parametrize("value", [-1, 9, True, "2", 1.5])
def test_a_bad_min_gpus_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="min_gpus"):
        load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1", "min_gpus": value}]))
