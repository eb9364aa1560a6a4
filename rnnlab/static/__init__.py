"""Web pages served by `rnnlab serve` (package data)."""
