from runsurge_worker.main import main

main()
