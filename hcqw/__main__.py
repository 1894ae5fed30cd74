import sys

from hcqw.cli import main

sys.exit(main())
