from x0tta6bl4.policy.main import main

raise SystemExit(main())
