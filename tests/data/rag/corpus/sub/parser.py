"""A tiny parser used as a source-code document."""


def tokenize_ledger(line):
    """Split a ledger line into fields separated by pipes."""
    return [field.strip() for field in line.split("|")]


def total_amount(lines):
    """Sum the third field of every ledger line."""
    return sum(float(tokenize_ledger(l)[2]) for l in lines)
