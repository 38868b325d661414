from sealbill.cli import main

main()
