from zonekeeper.cli.main import main

main()
