from runsurge_master.main import main

main()
