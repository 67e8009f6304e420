"""``python -m workers {sd|llm} --listen ...``: run one worker process (see ``workers.main``)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
