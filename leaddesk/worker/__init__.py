"""The worker tier: Celery on a broker (Redis or RabbitMQ) behind the same `Dispatcher` interface.

With LEADDESK_BROKER_URL set, web processes only store events and publish "conversation N has new
messages" (`CeleryDispatcher`); `leaddesk worker` processes run the bot. The store stays the source
of truth and the broker only carries hints, so nothing is lost when the broker loses messages:

- tasks are acknowledged late and rejected back to the queue when a worker process dies
  (at-least-once); the bot's effects are idempotent (messages are claimed in the transaction that
  records the one reply, whose idempotency key is the last message id), so a repeated task never
  answers or scores twice;
- two workers never process one conversation at once: a PostgreSQL advisory lock keyed by the
  conversation id (on SQLite, which lives on one machine, a byte-range file lock beside the
  database); a task that finds the lock taken is re-queued with a short countdown, and the holder
  re-checks for pending messages before letting go, so a burst is answered together; a reply an
  interrupted run recorded but never handed over goes out first;
- a sweeper in every worker (one at a time across the cluster) re-submits conversations whose
  messages have waited too long while the queue is empty (a broker restart without persistence, a
  publish that failed while the broker was down, a worker machine that vanished), and marks sends
  interrupted by a crash as "unknown" instead of sending them again.

Modules, one job each: `dispatcher` (the `Dispatcher` protocol and the in-process
`ThreadDispatcher`), `celery_app` (the Celery app and `CeleryDispatcher`), `locks` (per-conversation
locks), `setup` (bringing the database up to date, one process at a time), `sweeper`, and `runner`
(what a worker process runs, and its Celery task). The store queries they use live in
`store.pending`. This package imports nothing itself, so that `leaddesk.wiring` can use its
modules while `runner` builds on `leaddesk.wiring`.
"""
