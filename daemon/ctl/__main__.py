"""``python -m daemon.ctl``: tocsinctl without the installed entry point."""

import sys

from daemon.ctl import main

sys.exit(main())
