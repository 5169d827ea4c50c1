"""`python -m cvgr ...`: the same command line as `cvgr ...`."""

import sys

from cvgr.cli import main

if __name__ == "__main__":
    sys.exit(main())
