"""`python -m handwriting_gan.expand path=<folder> out=<new folder>`: the expand command."""

from handwriting_gan.expand.command import main

if __name__ == "__main__":
    main()
