"""Benchmark-grade hosts (docs/cli.md, "host"): the settings that affect measurement and their
recommended values (settings), `benchrun host tune`/`reset` with a crash-safe journal (tune,
journal), the attestation recorded with every result (attest), and the CPU partition benchmark
runs own (benchrun.host.partition, imported on its own).

Light on purpose: the runner imports it for every run; the submodules load what they need."""

from benchrun.host.attestation import attest, host_state
from benchrun.host.journal import default_journal, state_dir
from benchrun.host.settings import Setting, catalogue, format_cpus, parse_cpus
from benchrun.host.tune import TuneReport, benchmark_cpus, reset, tune, tuned

__all__ = [
    "Setting",
    "TuneReport",
    "attest",
    "benchmark_cpus",
    "catalogue",
    "default_journal",
    "format_cpus",
    "host_state",
    "parse_cpus",
    "reset",
    "state_dir",
    "tune",
    "tuned",
]
