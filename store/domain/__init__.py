"""The business rules every front end calls: the bot, the REST API, the console, the copilot and
the CLI.

- `errors`: the one refusal hierarchy (`RuleError` and its kinds) front ends translate;
- `policy`: what the rules read from the admin's configuration (statuses, pauses, hours);
- `status`: status change with its lock, AI behaviour and action; convert, reopen;
- `assignment`: assign one lead, many, round-robin by capacity, move an agent's book;
- `takeover`: the bot quiet while a human talks, pause, stop, resume;
- `merge`: merging leads by hand and settling merge suggestions;
- `permissions`: who may see and change what, and what a locked lead still allows;
- `tasks`: follow-up tasks (create, reschedule, complete, the lists by business day), logged calls
  and meetings, the task the bot proposes, and the reminders and morning digest.

Import the module you need (`from store.domain import status`); this package imports none of them
so that the store's repositories may use `errors` without a cycle. Functions take a keyword-only
`session` and never commit: the caller owns the transaction.
"""
