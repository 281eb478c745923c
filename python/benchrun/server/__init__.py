"""benchrun's job server: Bencher's runner protocol over WebSocket for agents, a REST API and
Server-Sent Events for users, SQLite or PostgreSQL storage (docs/jobs.md)."""
