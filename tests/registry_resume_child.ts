/**
 * A pull in a child process, for the resume test to kill half-way:
 *   registry_resume_child.ts CONTENT_DIR REFERENCE
 * Prints the fetch stats as JSON when it finishes.
 */
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { fetchImage } from "../images/registry/fetch.ts";

const [dir, reference] = Deno.args;
if (!dir || !reference) throw new Error("usage: registry_resume_child.ts CONTENT_DIR REFERENCE");
const store = await LocalContentStore.open(dir);
const client = new RegistryClient({ plainHttp: true });
const image = await fetchImage(client, reference, { store });
console.log(JSON.stringify(image.stats));
client.close();
