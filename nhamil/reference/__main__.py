"""``python -m nhamil.reference``: the reference build command (see ``nhamil.reference.command``)."""

from nhamil.reference.command import main

if __name__ == "__main__":
    main()
