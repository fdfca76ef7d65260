"""Change management (procedures 1.1): the calendar's windows placed around blackouts, months
left without one reported ahead, window-only work that has waited too long paged."""
