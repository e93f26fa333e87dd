"""``python -m rigcli ...``"""

from __future__ import annotations

import sys

from rigcli.cli import main

sys.exit(main())
