// Keeps a test executable linkable while its folder has no sources yet.
