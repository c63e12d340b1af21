def main() -> None:
    print("raftka")
