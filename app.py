"""The web layer editor: `python app.py [--host 127.0.0.1] [--port 7860] [--model ...]` (same as `layered app`)."""

import sys

from layered.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
