from stzoo.cli.main import main

raise SystemExit(main())
