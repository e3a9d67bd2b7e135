from edgeport.cli import main

if __name__ == "__main__":   # a spawned row worker imports this module too: it must not run the CLI again
    raise SystemExit(main())
