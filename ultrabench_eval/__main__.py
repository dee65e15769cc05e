from ultrabench_eval.cli import main

raise SystemExit(main())
