from zonekeeper.cli import run

run()
