"""Intel TDX: DCAP quotes v4/v5, QE report, PCK chain, TCB info and QE identity appraisal."""
