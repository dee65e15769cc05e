from ultrabench_eval.cli.parser import main

raise SystemExit(main())
