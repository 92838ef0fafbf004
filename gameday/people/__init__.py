"""People: identities, sign-in, tokens and the permissions four eyes rests on."""
