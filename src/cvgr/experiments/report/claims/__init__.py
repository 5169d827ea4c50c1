"""The paper's claims, one module per part of the report that shows their evidence: `models`
(the unit-modulus identity, matched sizes), `robustness`, `frontier`, `transfer`, `timing`
and `masking`; `core` holds what they share (the verdict type, `Claim`, the accuracy margin
and curve readers). `cvgr.experiments.report.verdicts` collects their claims into one table.
"""
