"""A billing cycle shared by worker processes on several machines (Procrastinate on PostgreSQL).

The run's state lives in sealbill's own tables, as in the embedded mode; the queue only says
which stage to run next. Each stage job calls the same pipeline function the embedded CLI calls
(:mod:`sealbill.workers.stages`). Exactly-once is the outbox's and the unique constraints' job,
never the queue's: any job may run twice (a retry after its worker died) and produce nothing new.
"""
