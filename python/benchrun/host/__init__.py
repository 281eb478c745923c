"""benchrun.host: the machine benchmarks run on (benchrun.host.partition: the CPU partition)."""
