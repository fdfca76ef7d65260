"""Errors users act on."""


class InputError(ValueError):
    """Bad input from a form or the policy; the message starts with the field's name.

    Operators fail at once on it, without retries: the same input would fail again.
    """
