import sys

from hn_modulefix._cli import main

sys.exit(main())
