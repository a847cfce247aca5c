"""``python -m bench`` (``make bench``): run every benchmark."""

from bench.preflight import main

raise SystemExit(main())
