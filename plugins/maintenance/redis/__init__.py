"""Redis maintenance: engine functions over a client, and their operators."""
