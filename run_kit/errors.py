"""The exceptions the command line turns into one line on stderr.

`InputError`: bad input the user can fix (an unknown op, data set or space, a malformed genotype, an image too small
for the network, an out-of-range option); exit status 2, nothing half-written.
`RunDiverged`: a loss or architecture logit became NaN or infinite; the run stops at once, its last good checkpoint
stays and no genotype is written from non-finite logits; exit status 3.
"""


class InputError(ValueError):
    """Bad input that the user can fix; the message says how."""


class RunDiverged(RuntimeError):
    """A non-finite loss or logit; the message names the epoch (or meta-step) and step."""
