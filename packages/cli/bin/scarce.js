#!/usr/bin/env node
// The bin target exists before the TypeScript build, so package managers can link it at install time.
import '../dist/main.js';
