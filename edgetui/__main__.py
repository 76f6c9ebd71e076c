from edgetui.cli import main

main()
