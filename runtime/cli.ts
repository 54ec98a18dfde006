export function main(args: string[]) { console.log("runtime stub", args); return 0; }
