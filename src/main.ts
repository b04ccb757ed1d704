/**
 * `npm start`: the reference user service (see src/service/main.ts and `--help`).
 */
import "./service/main.js"
