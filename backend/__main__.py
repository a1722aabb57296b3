"""`python -m backend ...` is the same command as `keydiff3d ...` (the add-on launches it this way)."""

from .cli import main

main()
