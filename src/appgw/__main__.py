from appgw.cli import main

raise SystemExit(main())
