from humanseg.cli import as_a_tool, main

if __name__ == "__main__":
    as_a_tool()
    main()
