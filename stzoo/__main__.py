from stzoo.cli import main

raise SystemExit(main())
