"""The one exception type for bad user input.

Everything a user can get wrong (an unknown op, data set or space, a malformed genotype, an image too small for
the network) raises `InputError`; the command line turns it into one line on stderr and exit status 2.
"""


class InputError(ValueError):
    """Bad input that the user can fix; the message says how."""
