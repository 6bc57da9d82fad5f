from circuitdsl.cli.app import main

main()
