"""The immersion sessions process (stages croisés), layered downward.

states (statuses, partner steps, waits, French labels) < rules (pure decisions) < tables <
plan (deadlines, calendar parts) < common (lookups, the session's scope, events, mails,
links) < one module per step: call, selection, placements, agreements, meetings,
evaluations (each: its form, data functions, typed mails, partner page), and report <
changes (withdrawals, moved meetings, cancellation) < progress (what comes next: the one
question each phase of the flow asks) < process (what the catalogue lists).
"""
