from kever.cli import main

main()
