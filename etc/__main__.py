from etc.cli import main

main()
