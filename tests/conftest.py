"""Shared pytest configuration: hypothesis profiles (CI runs derandomized)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=30, deadline=None)
# `make fuzz`: the graph fuzzer (tests/fuzz) at length, random seeds
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("LOWP_FUZZ_EXAMPLES", "5000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
settings.load_profile("dev")
