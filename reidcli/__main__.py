from reidcli.cli.app import main

main()
