"""``python -m edgeanomaly.cli``: the same as the ``edgeanomaly`` command."""

from edgeanomaly.cli import main

main(prog_name="edgeanomaly")
