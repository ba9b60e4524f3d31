"""One module per `jaxmarl-lab` subcommand, each with `add_parser(subparsers)`."""
