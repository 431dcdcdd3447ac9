"""`python -m handwriting_gan.study ...`: the study command (handwriting_gan.study.command)."""

from handwriting_gan.study.command import main

if __name__ == "__main__":
    main()
