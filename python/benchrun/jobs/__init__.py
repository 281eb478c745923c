"""Jobs: Bencher's runner protocol, shared by the agent (benchrun.agent) and the job server
(benchrun.server)."""
